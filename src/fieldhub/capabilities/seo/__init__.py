"""SEO: how the business's website does in search and for its visitors (Core Web Vitals; backlinks to come).

A provider of Core Web Vitals has `seo.py` with `async def fetch_vitals(env, connection, origin) -> list[Reading]`:
the p75 of LCP, INP and CLS per form factor and collection period (field data, history included), or
`NoData` when the provider has none for the origin. The capability stores them, grades them against the
thresholds, charts them, keeps a log of every fetch, and raises an alert when a metric turns poor.
"""
