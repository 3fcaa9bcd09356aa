"""Reports that open offline: Great Expectations' Data Docs and `dvc plots show` pages load
local copies of the scripts, styles and fonts they would fetch from CDNs.

- ``assets``: the vendored files and the CDN addresses they stand in for (``assets/manifest.json``).
- ``offline``: ``make_offline(site_dir)`` points a built Data Docs site at local copies.
- ``dvc_template``: the `dvc plots show` HTML template with vega inlined.
- ``vendor``: fetches the assets again from npm (``python -m pixelflip.reports.vendor``).
"""
