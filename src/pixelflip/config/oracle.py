"""The ``oracle`` params section: the independent classifier that re-predicts counterfactuals.

A counterfactual that only fools the model it was searched on (adversarial noise) rarely fools
another network; a real change of content does. The ``oracle`` stage trains that other network
on the same training split, with another architecture and another seed, and ``evaluate``
reports the share of counterfactuals it also assigns to their target class.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixelflip.config.knobs import ParamsError, knob


@dataclass(frozen=True)
class OracleParams:
    """The oracle's own architecture, seed and schedule; its augmentation, early stopping and
    learning-rate schedule are the ``train`` section's."""

    seed: int = knob(7, minimum=0, maximum=2**31 - 1, help="must differ from the top-level seed")
    backbone: str = knob("separable_resnet", help="must differ from train.backbone's network "
                                                  "(another backbone, filters or input size)")
    input_size: int | None = knob(None, minimum=8, maximum=1024,
                                  help="side the backbone sees; null = image size")
    conv_filters: list[int] = knob([16, 32, 64], minimum=1, maximum=1024)
    dense_units: int = knob(64, minimum=1, maximum=8192)
    dropout_rate: float = knob(0.3, minimum=0.0, maximum=1.0, exclusive_maximum=True)
    epochs: int = knob(15, minimum=1, maximum=1000)
    batch_size: int = knob(64, minimum=1, maximum=4096)
    learning_rate: float = knob(1e-3, minimum=0.0, maximum=1.0, exclusive_minimum=True)


def check_oracle(oracle: OracleParams, *, seed: int, train, backbones: tuple[str, ...],
                 own_backbones: tuple[str, ...]) -> None:
    """Raise ParamsError unless the oracle is a valid network independent of ``train``'s."""
    if oracle.backbone not in backbones:
        raise ParamsError(f"oracle.backbone = {oracle.backbone!r} is unknown; allowed: "
                          + ", ".join(backbones))
    if oracle.seed == seed:
        raise ParamsError(f"oracle.seed = {oracle.seed} is the pipeline's seed: the oracle must "
                          "be trained independently; set another value")
    same_network = (oracle.backbone, oracle.input_size, list(oracle.conv_filters)) == (
        train.backbone, train.input_size, list(train.conv_filters))
    if same_network:
        raise ParamsError(f"oracle.backbone, oracle.input_size and oracle.conv_filters build the "
                          f"same network as train ({oracle.backbone}, {oracle.input_size}, "
                          f"{oracle.conv_filters}): an oracle of the same architecture shares its "
                          "blind spots; change at least one")
    if oracle.backbone not in own_backbones and oracle.input_size is not None \
            and oracle.input_size < 32:
        raise ParamsError(f"oracle.input_size = {oracle.input_size} is too small for "
                          f"{oracle.backbone}; allowed: >= 32, or null")
    if oracle.backbone == "separable_resnet" and len(oracle.conv_filters) < 2:
        raise ParamsError(f"oracle.conv_filters = {oracle.conv_filters} is too short for "
                          "separable_resnet; allowed: at least two entries")
