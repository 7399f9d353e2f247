"""Helpers of the sales summary notebook: a module beside it, as a team's project would have."""

import pandas as pd


def summarize(sales: pd.DataFrame, region: str) -> pd.DataFrame:
    """Revenue and orders per month, for one region or for all of them."""
    if region != "all":
        sales = sales[sales["region"] == region]
    sales = sales.assign(month=sales["date"].str[:7], revenue=sales["quantity"] * sales["unit_price"])
    return sales.groupby("month", as_index=False).agg(orders=("order_id", "count"), revenue=("revenue", "sum"))
