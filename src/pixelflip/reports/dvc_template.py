"""The HTML template that makes `dvc plots show` render offline: dvc-render's page with the
vendored vega, vega-lite and vega-embed written into it instead of loaded from a CDN.

DVC writes ``dvc_plots/index.html`` wherever the command runs (the project root, a pipeline
folder, or ``-o``), so script paths relative to the page could not resolve everywhere: the
scripts are inlined, about 0.8 MB. The template has no ``{scripts}`` placeholder, which is where
dvc-render would put its CDN ``<script>`` tags. ``.dvc/config`` names the file
(``plots.html_template``, relative to ``.dvc/``); ``pixelflip.reports.vendor`` rewrites it.
"""

from __future__ import annotations

import re
from pathlib import Path

from pixelflip.reports.assets import MANIFEST_PATH, Manifest, read_manifest

TEMPLATE_PATH = Path(__file__).resolve().parent / "dvc_plots_template.html"
_SCRIPT_SOURCE = re.compile(r"""<script\b[^>]*\bsrc\s*=\s*["']([^"']+)["']""")


def template_text(manifest: Manifest | None = None) -> str:
    """dvc-render's page (``dvc_render.html.PAGE_HTML``) with the vega renderer's scripts inline.

    Raises:
        ValueError: if dvc-render loads a script the manifest does not cover (a dvc-render
            upgrade that moved to new versions), naming it.
    """
    from dvc_render.html import HTML, PAGE_HTML
    from dvc_render.vega import VegaRenderer

    manifest = manifest or read_manifest()
    placeholder = "{" + HTML.SCRIPTS_PLACEHOLDER + "}"
    # dvc-render replaces these in the whole page, inlined scripts included.
    placeholders = [placeholder] + ["{" + name + "}" for name in
                                    (HTML.PLOTS_PLACEHOLDER, HTML.REFRESH_PLACEHOLDER)]
    scripts = []
    for url in _SCRIPT_SOURCE.findall(VegaRenderer.SCRIPTS):
        file = manifest.vendored(url, "dvc-render's vega page")
        source = file.local_path.read_text(encoding="utf-8")
        clashes = [text for text in ["</script", *placeholders] if text in source.lower()]
        if clashes:
            raise ValueError(f"{file.relative} holds {', '.join(clashes)}, so it cannot be "
                             "inlined into the DVC plots template; ship it beside the page.")
        # The comment names the file, not the CDN address: the page must hold none.
        scripts.append(f"<script>/* {file.package}@{file.version} {file.path}, vendored: see "
                       f"pixelflip/reports/assets/{MANIFEST_PATH.name} */\n{source}\n</script>")
    if not scripts:
        raise ValueError("dvc-render's vega renderer loads no scripts by <script src>; update "
                         f"{__name__} for its new way of loading vega.")
    return PAGE_HTML.replace(placeholder, "\n".join(scripts))


def write_template(path: Path = TEMPLATE_PATH) -> Path:
    """Write ``template_text()`` to ``path`` and return it."""
    path.write_text(template_text(), encoding="utf-8")
    return path
