"""DVC stage `attention_maps`: where each attention module looks, before and after its answer
flipped, on the sampled images and their counterfactuals (of the first counterfactual method).

Writes `data/attention_maps/<module>.npz` (`original/<layer>` and `counterfactual/<layer>` maps,
(N, H, W) in [0, 1]) and `plots/attention_maps/<module>.png`.
"""

import numpy as np

from pixelflip.stage import layout
from pixelflip.stage.console import progress
from pixelflip.stage.frame import run_stage
from pixelflip.tracking.runs import log_artifacts


def main(params):
    from pixelflip.counterfactuals.result import CounterfactualResult
    from pixelflip.models.attention import attention_maps
    from pixelflip.models.loading import load_classifier
    from pixelflip.plots.attention import plot_attention_maps
    from pixelflip.plots.common import save_figure
    from pixelflip.stage.files import atomic_path

    method = params.counterfactuals.methods[0]
    with atomic_path(layout.ATTENTION_MAPS_DIR) as out_dir:
        out_dir.mkdir()
        modules = params.attention.modules
        for position, module in enumerate(modules, 1):
            progress("attention_maps", model=(position, len(modules), module))
            model = load_classifier(layout.model_path(module))
            result = CounterfactualResult.load(layout.explanation_path(
                layout.COUNTERFACTUALS_DIR, module, "sampled", method))
            before = attention_maps(model, result.originals)
            after = attention_maps(model, result.counterfactuals)
            np.savez_compressed(out_dir / f"{module}.npz",
                                **{f"original/{layer}": maps for layer, maps in before.items()},
                                **{f"counterfactual/{layer}": maps for layer, maps in after.items()})
            save_figure(plot_attention_maps(
                result.originals, before, counterfactuals=result.counterfactuals,
                counterfactual_maps=after, max_images=params.select.figure_images),
                layout.ATTENTION_MAP_PLOTS_DIR / f"{module}.png")
            print(f"[attention_maps] {module}: {len(before)} attention layers on "
                  f"{len(result)} images and their counterfactuals", flush=True)
        log_artifacts(out_dir, artifact_path="attention_maps")
    log_artifacts(layout.ATTENTION_MAP_PLOTS_DIR, artifact_path="plots")


if __name__ == "__main__":
    run_stage("attention_maps", main)
