"""crossmatch: open big-data supervision of public subsidies (惠民惠农资金大数据监督)."""

__version__ = "0.1.0"
