"""The report ``dskd demo`` writes beside its figures (``demo_report.md``)."""
from __future__ import annotations

from typing import Any


def demo_report_markdown(report: Any, *, data: str, seed: int, epochs: int, train_seconds: float,
                         final_loss: float, total_seconds: float) -> str:
    """Markdown: data, teacher, training and the metrics overall and per defect type (an
    :class:`~dskd.evaluation.EvaluationReport` of the demo's test split)."""
    lines = [
        "# dskd demo report", "",
        f"- data: {data} (embedded synthetic data set, generated from seed {seed})",
        f"- teacher: {report.teacher}",
        f"- training: {epochs} epochs, {train_seconds:.1f} s; final loss {final_loss:.4f}",
        f"- image AUROC {report.image_auroc:.3f}, pixel AUROC {report.pixel_auroc:.3f}, PRO {report.pro:.3f}",
        "", "| defect type | image AUROC | pixel AUROC | PRO |", "| --- | --- | --- | --- |",
        *[f"| {t} | {m['image_auroc']:.3f} | {m['pixel_auroc']:.3f} | {m['pro']:.3f} |"
          for t, m in report.per_defect_type.items()],
        "", "Figures: demo_maps.png (image / anomaly map / ground truth), demo_loss.png.",
        f"Total time {total_seconds:.1f} s.",
    ]
    return "\n".join(lines) + "\n"
