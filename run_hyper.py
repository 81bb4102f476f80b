"""Tune a model with RecBole's HyperTuning: ``python run_hyper.py --model=DiffRec --params_file=properties/DiffRec.hyper``."""

from recbole_diffrec.tuning import main

if __name__ == "__main__":
    main()
