"""The MLflow UI addresses `make ui` prints and the browser test opens (MLflow 3.17's routes)."""

from pixelflip.tracking.ui import run_url, runs_table_url


def test_the_runs_table_opens_in_the_model_training_view():
    # Without workflowType=machine_learning a fresh browser opens the GenAI view's Overview.
    assert runs_table_url("http://127.0.0.1:5000/", "3") == \
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"


def test_a_run_tab_is_a_route_below_the_run():
    base = "http://127.0.0.1:5000"
    assert run_url(base, "1", "abc") == \
        "http://127.0.0.1:5000/#/experiments/1/runs/abc?workflowType=machine_learning"
    assert run_url(base, "1", "abc", "model-metrics") == \
        "http://127.0.0.1:5000/#/experiments/1/runs/abc/model-metrics?workflowType=machine_learning"
    # An artifact path keeps its slashes; a space is escaped.
    assert run_url(base, "1", "abc", "artifacts/tables/a b.json") == (
        "http://127.0.0.1:5000/#/experiments/1/runs/abc/artifacts/tables/a%20b.json"
        "?workflowType=machine_learning")
