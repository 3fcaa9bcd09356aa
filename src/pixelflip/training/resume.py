"""Training that a kill does not spoil: per-epoch seeding and an atomic, complete backup.

Two callbacks make a resumed run finish exactly like one that was never interrupted:

- :class:`EpochSeeding` makes every random draw of epoch ``e`` (batch order, augmentation,
  dropout) a function of ``(random_state, e)`` alone, so a process that starts at epoch ``e``
  draws what the killed one would have drawn.
- :class:`ResumableBackup` saves, after every epoch, everything else the next epoch depends on:
  weights and optimizer, the epoch count, and the state of the other stateful callbacks (early
  stopping with its best weights, learning-rate reduction, the per-epoch history).

Layout of ``backup_dir``: one folder ``epoch-NNNN`` per saved state (normally just the newest),
written as ``epoch-NNNN.partial`` and renamed only once complete, so a kill during a save leaves
the previous epoch's folder intact and usable.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from pixelflip.config.checks import check_integer
from pixelflip.training.epochs import EpochClock

_FORMAT_VERSION = 1
_WEIGHTS_FILE = "training.weights.h5"
_METADATA_FILE = "metadata.json"
_EPOCH_PREFIX = "epoch-"
_PARTIAL_SUFFIX = ".partial"


def seed_generators(objects: Iterable[keras.layers.Layer]) -> list[keras.random.SeedGenerator]:
    """Every ``keras.random.SeedGenerator`` of ``objects`` and their sublayers, in a fixed order.

    Keras 3 layers track their generators in ``_seed_generators`` (Dropout, the random
    preprocessing layers, :class:`~pixelflip.data.augment.RandomElasticDistortion`); the
    preprocessing layers keep extra ones per backend in ``_backend_generators``. The order only
    depends on how the objects were built, so it is the same in every process.
    """
    found: list[keras.random.SeedGenerator] = []
    seen: set[int] = set()
    for root in objects:
        for layer in root._flatten_layers(include_self=True, recursive=True):
            backend_generators = getattr(layer, "_backend_generators", {})
            candidates = [*layer._seed_generators,
                          *(backend_generators[key] for key in sorted(backend_generators))]
            for generator in candidates:
                if id(generator) not in seen:
                    seen.add(id(generator))
                    found.append(generator)
    return found


def epoch_seed(random_state: int, epoch: int, index: int) -> int:
    """A 32-bit seed that depends only on ``(random_state, epoch, index)``, all integers >= 0."""
    return int(np.random.SeedSequence([int(random_state), int(epoch), int(index)])
               .generate_state(1)[0])


class EpochSeeding(keras.callbacks.Callback):
    """At the start of every epoch, point the input pipeline and every seed at that epoch.

    ``on_epoch_begin(e)`` sets ``epoch_clock.epoch = e`` (the input pipeline reads it when the
    epoch's pass over the data starts: Keras creates that iterator after ``on_epoch_begin``) and
    resets the state of every ``SeedGenerator`` of the model being trained and of
    ``seeded_objects`` (for example the augmenter) to ``[epoch_seed(random_state, e, i), 0]``,
    ``i`` being the generator's position in :func:`seed_generators`.

    Parameters
    ----------
    random_state : int >= 0
    epoch_clock : EpochClock or None
        Shared with the training dataset; None when the batch order needs no clock.
    seeded_objects : sequence of keras.layers.Layer
        Layers or models besides the trained model whose draws must follow the epoch; they
        need not be part of the model (the augmenter runs in the tf.data pipeline).
    """

    def __init__(self, random_state: int, epoch_clock: EpochClock | None = None,
                 seeded_objects: Sequence[keras.layers.Layer] = ()):
        super().__init__()
        self.random_state = check_integer("random_state", random_state, minimum=0)
        self.epoch_clock = epoch_clock
        self.seeded_objects = tuple(seeded_objects)

    def on_epoch_begin(self, epoch, logs=None):
        if self.epoch_clock is not None:
            self.epoch_clock.epoch = int(epoch)
        for index, generator in enumerate(seed_generators([self.model, *self.seeded_objects])):
            state = np.array([epoch_seed(self.random_state, epoch, index), 0],
                             dtype=generator.state.dtype)
            generator.state.assign(state)


def backed_up_epochs(backup_dir: str | os.PathLike) -> int | None:
    """Epochs finished by the newest complete backup in ``backup_dir``; None when there is none."""
    folders = _complete_backups(Path(backup_dir))
    return folders[0][0] if folders else None


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that also keeps the callbacks' state and checks what it resumes.

    After every epoch it saves, into a new folder renamed into place once complete: the model's
    weights with the optimizer's variables (learning rate and step count included), the number
    of finished epochs, whether early stopping ended training, a ``fingerprint`` and the state of
    ``stateful_callbacks``. When ``fit`` starts it restores the newest backup and makes ``fit``
    continue with the next epoch, printing ``[<name>] resuming from epoch k of N (backup in
    <dir>)`` (k epochs were done). A backup made under another fingerprint, or unreadable, is
    deleted with a printed line saying why, and training starts fresh. The backup is deleted
    when training finishes.

    It must come after ``stateful_callbacks`` in the callback list, so that it restores their
    state after they reset it in ``on_train_begin`` and saves it after they updated it in
    ``on_epoch_end``.

    Parameters
    ----------
    backup_dir : path
        Used by this run alone; only ``epoch-*`` folders in it are ever written or deleted.
    fingerprint : str
        Identifies what determines the result (for example a hash of the params and the data
        digest); a backup is resumed only under the same fingerprint.
    name : str
        Prefix of the printed lines, e.g. the model name.
    stateful_callbacks : sequence of keras.callbacks.Callback
        ``EarlyStopping`` (wait, best, best epoch, stopped epoch, best weights),
        ``ReduceLROnPlateau`` (wait, best, cooldown counter), or any callback with
        ``get_state() -> dict`` (JSON-serializable) and ``set_state(dict)``.

    Raises
    ------
    ValueError
        A callback in ``stateful_callbacks`` whose state cannot be saved.
    """

    def __init__(self, backup_dir: str | os.PathLike, *, fingerprint: str = "",
                 name: str = "training",
                 stateful_callbacks: Sequence[keras.callbacks.Callback] = ()):
        super().__init__(os.fspath(backup_dir), save_freq="epoch", delete_checkpoint=True)
        for callback in stateful_callbacks:
            if _state_kind(callback) is None:
                raise ValueError(
                    f"{type(callback).__name__} has no state ResumableBackup can save; pass "
                    f"EarlyStopping, ReduceLROnPlateau or a callback with get_state/set_state."
                )
        self.backup_path = Path(backup_dir)
        self.fingerprint = str(fingerprint)
        self.name = str(name)
        self.stateful_callbacks = tuple(stateful_callbacks)

    # -- keras hooks ------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._remove_partial_backups()
        folders = _complete_backups(self.backup_path)
        if not folders:
            return
        epochs_done, folder = folders[0]
        reason = self._restore(folder)
        if reason is not None:
            self._discard(reason)
            return
        for _, older in folders[1:]:
            shutil.rmtree(older, ignore_errors=True)
        print(f"[{self.name}] resuming from epoch {epochs_done} of {self.params['epochs']} "
              f"(backup in {self.backup_path})", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        self._save(epochs_done=int(epoch) + 1)

    def on_train_batch_end(self, batch, logs=None):
        pass  # saves happen per epoch only: a mid-epoch state could not be resumed exactly

    def on_train_end(self, logs=None):
        self._remove_backups()
        # Keras keeps the resumed epoch on the model; a later fit of the same model must not
        # start there.
        self.model._initial_epoch = None

    # -- saving -----------------------------------------------------------------------------

    def _save(self, *, epochs_done: int) -> None:
        final = self.backup_path / f"{_EPOCH_PREFIX}{epochs_done:04d}"
        partial = final.with_name(final.name + _PARTIAL_SUFFIX)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        self.model.save_weights(os.fspath(partial / _WEIGHTS_FILE))
        states = [_save_callback_state(callback, partial, index)
                  for index, callback in enumerate(self.stateful_callbacks)]
        metadata = {
            "format_version": _FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "epochs_done": epochs_done,
            "stopped": bool(self.model.stop_training),
            "callbacks": states,
        }
        (partial / _METADATA_FILE).write_text(json.dumps(metadata, indent=1))
        for path in partial.iterdir():
            _fsync(path)
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        _fsync(self.backup_path)
        for done, older in _complete_backups(self.backup_path):
            if done < epochs_done:
                shutil.rmtree(older, ignore_errors=True)

    # -- restoring --------------------------------------------------------------------------

    def _restore(self, folder: Path) -> str | None:
        """Restore ``folder`` into the model and callbacks; the reason when it cannot be used."""
        try:
            metadata = json.loads((folder / _METADATA_FILE).read_text())
            epochs_done, stopped = int(metadata["epochs_done"]), bool(metadata["stopped"])
            states = list(metadata["callbacks"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            return f"its metadata cannot be read ({type(error).__name__}: {error})"
        if metadata.get("format_version") != _FORMAT_VERSION:
            return "it was written by another version of pixelflip"
        if metadata.get("fingerprint") != self.fingerprint:
            return ("it was made by a run with other params or data (fingerprint "
                    f"{metadata.get('fingerprint')!r}, this run {self.fingerprint!r})")
        if [state.get("kind") for state in states] != [
                _state_kind(callback) for callback in self.stateful_callbacks]:
            return "it was made with other training callbacks"
        if epochs_done > self.params["epochs"]:
            return f"it holds {epochs_done} epochs but this run has only {self.params['epochs']}"
        # Everything that can fail is read first, so a backup that cannot be used leaves the
        # model and the callbacks as they were.
        try:
            states = [_read_callback_state(state, folder, index)
                      for index, state in enumerate(states)]
            self._load_weights(folder / _WEIGHTS_FILE)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            return f"it cannot be loaded ({type(error).__name__}: {error})"
        for callback, state in zip(self.stateful_callbacks, states):
            _apply_callback_state(callback, state)
        self.model._initial_epoch = self.params["epochs"] if stopped else epochs_done
        return None

    def _load_weights(self, path: Path) -> None:
        """Load model and optimizer variables, leaving them untouched if loading fails."""
        if not self.model.built:
            raise ValueError(f"Model {self.model.name!r} must be built before fit to resume.")
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        variables = [*self.model.weights, *(optimizer.variables if optimizer else [])]
        before = [keras.ops.convert_to_numpy(variable) for variable in variables]
        try:
            self.model.load_weights(os.fspath(path))
        except Exception:
            for variable, value in zip(variables, before):
                variable.assign(value)
            raise

    def _discard(self, reason: str) -> None:
        print(f"[{self.name}] discarding the backup in {self.backup_path}: {reason}; "
              "training starts from epoch 1", flush=True)
        self._remove_backups()

    def _remove_partial_backups(self) -> None:
        if self.backup_path.is_dir():
            for path in self.backup_path.glob(f"{_EPOCH_PREFIX}*{_PARTIAL_SUFFIX}"):
                shutil.rmtree(path, ignore_errors=True)

    def _remove_backups(self) -> None:
        self._remove_partial_backups()
        for _, folder in _complete_backups(self.backup_path):
            shutil.rmtree(folder, ignore_errors=True)
        try:
            self.backup_path.rmdir()  # only when nothing else lives there
        except OSError:
            pass


def _complete_backups(backup_dir: Path) -> list[tuple[int, Path]]:
    """``(epochs done, folder)`` of every complete backup, newest first."""
    if not backup_dir.is_dir():
        return []
    found = []
    for path in backup_dir.iterdir():
        number = path.name[len(_EPOCH_PREFIX):]
        if path.is_dir() and path.name.startswith(_EPOCH_PREFIX) and number.isdigit():
            found.append((int(number), path))
    return sorted(found, reverse=True)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- callback state -------------------------------------------------------------------------

def _state_kind(callback: Any) -> str | None:
    if isinstance(callback, keras.callbacks.EarlyStopping):
        return "early_stopping"
    if isinstance(callback, keras.callbacks.ReduceLROnPlateau):
        return "reduce_lr_on_plateau"
    if callable(getattr(callback, "get_state", None)) and \
            callable(getattr(callback, "set_state", None)):
        return "custom"
    return None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _save_callback_state(callback: Any, folder: Path, index: int) -> dict[str, Any]:
    kind = _state_kind(callback)
    if kind == "early_stopping":
        state = {"wait": int(callback.wait), "stopped_epoch": int(callback.stopped_epoch),
                 "best": _optional_float(callback.best),
                 "best_epoch": int(getattr(callback, "best_epoch", 0)),
                 "has_best_weights": callback.best_weights is not None}
        if callback.best_weights is not None:
            # Arrays go to their own file: JSON would lose bits, and they can be large.
            np.savez(folder / f"best_weights_{index}.npz", *callback.best_weights)
    elif kind == "reduce_lr_on_plateau":
        state = {"wait": int(callback.wait), "best": _optional_float(callback.best),
                 "cooldown_counter": int(callback.cooldown_counter)}
    else:
        state = {"state": callback.get_state()}
    return {"kind": kind, **state}


def _read_callback_state(state: dict[str, Any], folder: Path, index: int) -> dict[str, Any]:
    """The saved state with every field checked and the best weights loaded."""
    kind = state["kind"]
    if kind == "early_stopping":
        best_weights = None
        if state["has_best_weights"]:
            with np.load(folder / f"best_weights_{index}.npz") as arrays:
                best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        return {"kind": kind, "wait": state["wait"], "stopped_epoch": state["stopped_epoch"],
                "best": state["best"], "best_epoch": state["best_epoch"],
                "best_weights": best_weights}
    if kind == "reduce_lr_on_plateau":
        return {"kind": kind, "wait": state["wait"], "best": state["best"],
                "cooldown_counter": state["cooldown_counter"]}
    return {"kind": kind, "state": state["state"]}


def _apply_callback_state(callback: Any, state: dict[str, Any]) -> None:
    if state["kind"] == "custom":
        callback.set_state(state["state"])
        return
    for name, value in state.items():
        if name != "kind":
            setattr(callback, name, value)
