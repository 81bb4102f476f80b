"""Tune a model with RecBole's HyperTuning: ``python run_hyper.py --model=DiffRec`` (see --help)."""

from recbole_diffrec.environment import require_recbole

if __name__ == "__main__":
    require_recbole("run_hyper.py")
    from recbole_diffrec.cli import tune_main

    tune_main()
