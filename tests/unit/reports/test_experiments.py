"""The side-by-side experiments table: DVC's `exp show --json` turned round to fit 120 columns."""

import pytest

from pixelflip.reports.experiments import table


def entry(rev, name, epochs, validity, seconds, experiments=()):
    """One row as `dvc exp show --json` writes it (DVC 3)."""
    return {"rev": rev, "name": name, "experiments": list(experiments), "data": {
        "params": {"params.yaml": {"data": {"train": {"epochs": epochs, "batch_size": 32}}}},
        "metrics": {"summary/elastic_net.json": {"data": {"validity": validity}},
                    "timings/summary/elastic_net.json": {"data": {"s_per_image": seconds}},
                    "metrics/evaluation.json": {"data": {"base": {"detail": 1.0}}},
                    "pipelines/cats-vs-dogs/summary/elastic_net.json": {
                        "data": {"validity": 0.5}}}}}


def shown(count):
    experiments = [{"revs": [entry(f"{index:040x}", f"exp-{index}", 2 + index, 0.9, 0.03)]}
                   for index in range(count)]
    return [entry("workspace", None, 12, 1.0, 0.04),
            entry("a" * 40, "main", 12, 1.0, 0.041, experiments)]


def test_rows_are_the_headline_and_the_params_that_differ():
    lines = table(shown(1)).splitlines()
    assert lines[0].split() == ["workspace", "main", "exp-0"]
    rows = {line.split()[0] if not line.startswith("param") else " ".join(line.split()[:2]):
            line.split()[-3:] for line in lines[1:]}
    assert rows["param train.epochs"] == ["12", "12", "2"]
    assert rows["elastic_net.validity"] == ["1", "1", "0.9"]
    assert rows["elastic_net.s_per_image"] == ["0.04", "0.041", "0.03"]
    # Unchanged params, detailed metrics and the other pipeline's headline stay out.
    assert not any("batch_size" in line or "detail" in line for line in lines)
    assert not any("0.5" in line for line in lines)


def test_many_experiments_wrap_into_blocks_within_the_width():
    text = table(shown(12), width=120)
    assert max(map(len, text.splitlines())) <= 120
    assert "exp-11" in text and text.count("elastic_net.validity") >= 2


def test_the_photo_pipeline_reads_its_own_files():
    from pathlib import Path

    lines = table(shown(0), pipeline=Path("pipelines/cats-vs-dogs")).splitlines()
    assert any(line.startswith("elastic_net.validity") and line.split()[-1] == "0.5"
               for line in lines)


def test_nothing_to_show_is_a_clear_error():
    with pytest.raises(ValueError, match="dvc exp run"):
        table([{"rev": "workspace", "data": None}])
