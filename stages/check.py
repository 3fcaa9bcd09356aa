"""DVC stage `check`: check every key of params.yaml before any stage's outputs are removed.

Every stage descends from this one, so `dvc repro` stops here, with one line naming the bad
key, while every output of the stages after it is still on disk.
"""

from pixelflip.stage.params_check import run_check

if __name__ == "__main__":
    run_check()
