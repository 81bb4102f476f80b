from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "datasets"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long end-to-end or quality runs (deselect with -m 'not slow')")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in a temporary folder so logs and checkpoints never touch the checkout."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def ml1m_clean():
    path = SHARED_DATA / "ml-1m_clean"
    if not (path / "train_list.npy").exists():
        pytest.skip(f"the paper's ML-1M split is not at {path} (see ../shared/datasets/README.md)")
    return path
