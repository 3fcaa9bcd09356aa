"""A scratch project with its own MLflow SQLite store, for the tracking tests."""

SYSTEM_METRICS_SETTINGS = ("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL",
                           "MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING",
                           "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING")


def make_project(root, monkeypatch, *, data_sha256="abc123"):
    """A project folder at ``root`` whose runs go to ``root/mlflow.db``."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in SYSTEM_METRICS_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIXELFLIP_PIPELINE_ID", "test-pipeline-1")
    monkeypatch.setenv("DVC_EXP_NAME", "tiny-exp")
    (root / "dvc.yaml").write_text("stages: {}\n")
    set_data_digest(root, data_sha256)
    return root


def set_data_digest(root, data_sha256):
    (root / "data" / "raw").mkdir(parents=True, exist_ok=True)
    (root / "data" / "raw" / "source.json").write_text(f'{{"sha256": "{data_sha256}"}}')


def store_client(root):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    return MlflowClient()
