"""The prototype-guided counterfactual (Van Looveren & Klaise, 2019): the elastic-net search
with its prototype term on, registered as a method of its own.

A pipeline usually wants both answers to "what would make this a 3?": the sparsest change
(``elastic_net``) and one that looks like a real 3 (``prototype_guided``). They are the same
engine, :class:`~pixelflip.counterfactuals.elastic_net.ElasticNetCounterfactual`, with other
defaults (:class:`~pixelflip.config.methods.PrototypeGuidedSettings`): the prototype term at
weight 30 over the 10 nearest training encodings, the reconstruction term at 3; steps ten times smaller, which strong terms
need (at the elastic-net default of 0.1, FISTA oscillates and validity falls to about 0.6 on
MNIST); and no polishing, which would reset exactly the changes that make the counterfactual
look like its new class (they are not needed for the prediction: on the digit pipeline,
polishing took median IM1 from 0.95 back to 1.0). Registering it apart gives it its own ``counterfactuals.prototype_guided`` section
in params.yaml, its own rows in every table and its own figures.
"""

from __future__ import annotations

import dataclasses
import inspect

from pixelflip.config.methods import ElasticNetSettings, PrototypeGuidedSettings
from pixelflip.counterfactuals.elastic_net import ElasticNetCounterfactual

# The defaults where this method differs from the elastic-net search.
_OWN_DEFAULTS = {
    field.name: getattr(PrototypeGuidedSettings(), field.name)
    for field in dataclasses.fields(PrototypeGuidedSettings)
    if getattr(PrototypeGuidedSettings(), field.name) != getattr(ElasticNetSettings(), field.name)
}


class PrototypeGuidedCounterfactual(ElasticNetCounterfactual):
    """:class:`~pixelflip.counterfactuals.elastic_net.ElasticNetCounterfactual` with the
    defaults of :class:`~pixelflip.config.methods.PrototypeGuidedSettings` (``prototype_weight``
    30, ``autoencoder_weight`` 3, ``num_prototype_neighbours`` 10, ``learning_rate`` 0.01,
    ``polish`` False); every option of that class,
    and the same ``fit`` (which trains the guide's autoencoder) and ``explain``."""

    def __init__(self, **options) -> None:
        super().__init__(**{**_OWN_DEFAULTS, **options})


# The signature the registry, repr and params checks read: the elastic-net one with this
# method's defaults, so that the constructor states every option once.
PrototypeGuidedCounterfactual.__init__.__signature__ = inspect.signature(
    ElasticNetCounterfactual.__init__).replace(parameters=[
        parameter.replace(default=_OWN_DEFAULTS.get(name, parameter.default))
        for name, parameter in inspect.signature(
            ElasticNetCounterfactual.__init__).parameters.items()])
