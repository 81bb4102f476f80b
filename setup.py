from setuptools import setup

setup(
    name="recbole-diffrec",
    version="0.1.0",
    description="Diffusion recommenders (DiffRec, L-DiffRec, T-DiffRec, LT-DiffRec) as a RecBole plugin",
    python_requires=">=3.10,<3.14",
    # The yaml files live at the top of the repository (properties/, dataset_configs/) and travel
    # inside the package when installed.
    packages=["recbole_diffrec", "recbole_diffrec.core", "recbole_diffrec.networks", "recbole_diffrec.models",
              "recbole_diffrec.training", "recbole_diffrec.data", "recbole_diffrec.properties",
              "recbole_diffrec.dataset_configs"],
    package_dir={"recbole_diffrec.properties": "properties",
                 "recbole_diffrec.dataset_configs": "dataset_configs"},
    package_data={"recbole_diffrec.properties": ["*.yaml", "*.hyper"], "recbole_diffrec.dataset_configs": ["*.yaml"]},
    # RecBole 1.2.1 itself is installed without its dependencies (pip install --no-deps recbole==1.2.1; dev.sh
    # does it): its metadata pins ray<=2.6.3, which has no wheels for Python 3.12 and later, and which only
    # RecBole's quick_start module imports (recbole-diffrec never does). What RecBole needs at run time is
    # listed here instead, the same on every supported Python; nothing pulls ray.
    install_requires=[
        "torch>=2.6",
        "numpy>=2",
        "scipy>=1.13",
        "pandas>=2",
        "hyperopt>=0.2.7",
        "threadpoolctl>=3",
        # RecBole 1.2.1's own requirements, less ray
        "tqdm>=4.48.2",
        "colorlog==4.7.2",
        "colorama==0.4.4",
        "scikit-learn>=0.23.2",
        "pyyaml>=5.1.0",
        "tensorboard>=2.5.0",
        "thop>=0.1.1.post2207130030",
        "tabulate>=0.8.10",
        "plotly>=4.0.0",
        "texttable>=0.9.0",
        "psutil>=5.9.0",
    ],
    extras_require={"test": ["pytest", "hypothesis", "matplotlib", "mypy"], "bench": ["matplotlib", "psutil", "h5py"]},
    entry_points={"console_scripts": ["recbole-diffrec=recbole_diffrec.__main__:main"]},
)
