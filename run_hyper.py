"""Tune a model with RecBole's HyperTuning: ``python run_hyper.py --model=DiffRec`` (see --help)."""

from recbole_diffrec.cli import tune_main

if __name__ == "__main__":
    tune_main()
