"""dskd: Dual-Student Knowledge Distillation for unsupervised anomaly detection (Yao, DSKD).

A tested rebuild of the paper, piece by piece; see the book for the walk-through.
"""
__version__ = "0.1.0"
