"""Train and evaluate a model: ``python run_recbole.py --model=DiffRec`` (see --help)."""

from recbole_diffrec.cli import main

if __name__ == "__main__":
    main()
