"""Spend governance: a usage ledger, budgets per user and tenant, reservations at admission.

- `ledger`: one Cosmos record per request (container `usage`, partition /tenant) and totals.
- `policy`: the `BUDGETS` setting: daily and monthly limits per scope, with overrides.
- `counters`: one Cosmos item per (scope, period) holding settled spend and live reservations,
  written by compare-and-swap on the ETag (container `budgets`, partition /id).
- `admission`: reserve the estimated cost before dispatch, settle with the actual cost after.
- `audit`: recompute spend from the ledger, repair drift, record status, warn and notify.
"""
