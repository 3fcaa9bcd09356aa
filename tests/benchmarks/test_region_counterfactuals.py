"""The region benchmark compares the pipeline's own method settings, each varied by one option,
and writes a table that marks what it could not average."""

import importlib.util
import sys

from support.project import ROOT

from pixelflip.config.params import Params
from pixelflip.counterfactuals import make_counterfactual

SCRIPT = ROOT / "benchmarks" / "region_counterfactuals.py"
_specification = importlib.util.spec_from_file_location("region_counterfactuals", SCRIPT)
benchmark = sys.modules["region_counterfactuals"] = importlib.util.module_from_spec(_specification)
_specification.loader.exec_module(benchmark)


def test_every_configuration_is_the_pipelines_settings_with_one_option_changed():
    # The defaults, not the working copy: `dvc exp run -S counterfactuals.regions.candidates=null`
    # there would make every regions row black-box.
    params = Params()
    configurations = benchmark.configurations(params)
    labels = [label for label, *_ in configurations]
    assert labels[0] == "elastic_net" and len(set(labels)) == len(labels) == 6
    regions = params.counterfactuals.options("regions")
    for label, name, options, black_box in configurations:
        method = make_counterfactual(name, **options)  # every one builds
        if name == "regions":
            changed = {key for key, value in options.items() if regions[key] != value}
            assert changed <= {"replacement", "candidates"}, label
            assert black_box == (options["candidates"] is None)
    smooth = configurations[1][2]
    assert smooth["perturbation_resolution"] == benchmark.SMOOTH["perturbation_resolution"]
    assert method.name == "regions"


def test_the_table_shows_a_dash_where_nothing_was_valid():
    row = {"method": "regions blur", "validity": 0.0, "median_area": None, "median_regions": None,
           "median_l0": None, "oracle_agreement": None, "seconds_per_image": 0.5,
           "time_vs_elastic_net": 0.5}
    measured = {"images": 4, "image_shape": [128, 128, 3], "pipeline": "p", "seed": 0,
                "oracle_test_accuracy": 0.8, "rows": [row]}
    table = benchmark.markdown(measured, "python benchmarks/region_counterfactuals.py")
    assert "`python benchmarks/region_counterfactuals.py`: 4 test images 128x128x3" in table
    assert "| regions blur | 0.000 | – | – | – | – | 0.500 | 0.50 |" in table
