"""Train and evaluate a model: ``python run_recbole.py --model=DiffRec`` (see --help)."""

from recbole_diffrec.environment import require_recbole

if __name__ == "__main__":
    require_recbole("run_recbole.py")
    from recbole_diffrec.cli import main

    main()
