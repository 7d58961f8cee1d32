"""Explorer of the ablation chapters (10 to 13): every variant's seed-0 anomaly map on the same test
images, by defect type. Renders with :func:`dskd.plotting.plot_variant_maps`, its static twin."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Union

from ..plotting.ablation import _check_examples, plot_variant_maps
from .base import Explorer, _ipywidgets


def _types(examples: Mapping[str, Any]) -> list[str]:
    found = list(examples["defect_types"])
    return ["good"] * ("good" in found) + sorted(set(found) - {"good"})


def ablation_explorer(
    examples: Union[Mapping[str, Any], Mapping[str, Mapping[str, Any]]],
    *,
    teacher: Union[str, Mapping[str, str]],
    data: Union[str, Mapping[str, str]],
    study: Optional[str] = None,
    defect_type: Optional[str] = None,
    scale: str = "shared",
) -> Explorer:
    """Pick a defect type, an example image of it and the colour scale; shows image, ground truth and
    each variant's map (``examples`` from :func:`dskd.ablation.load_examples`).

    For several studies pass ``{study: examples}`` (and ``teacher``/``data`` as ``{study: str}``): a
    'study' menu appears and the defect types follow the chosen study's examples.
    """
    several = "maps" not in examples
    studies = dict(examples) if several else {study or "": examples}
    for ex in studies.values():
        _check_examples(ex, None)
    names = list(studies)
    first = study if several and study in studies else names[0]
    types = _types(studies[first])
    defect_type = defect_type or (types[1] if len(types) > 1 else types[0])
    if defect_type not in types:
        raise ValueError(f"unknown defect type {defect_type!r}: the examples have {types}")

    def n_of(ex, t):
        return sum(1 for d in ex["defect_types"] if d == t)

    w = _ipywidgets()
    controls: dict[str, Any] = {}
    if several:
        controls["study"] = w.Dropdown(options=names, value=first, description="study")
    type_w = w.Dropdown(options=types, value=defect_type, description="defect type")
    index_w = w.IntSlider(value=0, min=0, max=max(n_of(studies[first], defect_type) - 1, 0), description="image",
                          continuous_update=False)
    controls.update({"defect_type": type_w, "index": index_w,
                     "scale": w.Dropdown(options=["shared", "per variant"], value=scale, description="colour scale")})

    def pick(mapping, name):
        return mapping[name] if isinstance(mapping, Mapping) else mapping

    def on_study(change) -> None:  # registered before the explorer's observer, so it runs first
        new = _types(studies[change["new"]])
        keep = type_w.value if type_w.value in new else new[min(1, len(new) - 1)]
        type_w.options = new
        type_w.value = keep

    def on_type(change) -> None:
        ex = studies[controls["study"].value] if several else studies[first]
        index_w.max = max(n_of(ex, change["new"]) - 1, 0)
        index_w.value = min(index_w.value, index_w.max)

    if several:
        controls["study"].observe(on_study, names="value")
    type_w.observe(on_type, names="value")

    def render(defect_type: str, index: int, scale: str, study: Optional[str] = None):
        name = study if several else first
        ex = studies[name]
        index = min(index, n_of(ex, defect_type) - 1)
        return plot_variant_maps(ex, defect_type=defect_type, index=index, scale=scale,
                                 teacher=pick(teacher, name), data=pick(data, name), study=name)

    return Explorer(controls, render, title="Every variant's anomaly map on the same test image")
