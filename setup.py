from setuptools import setup

setup(
    name="recbole-diffrec",
    version="0.1.0",
    description="Diffusion recommenders (DiffRec, L-DiffRec, T-DiffRec, LT-DiffRec) as a RecBole plugin",
    python_requires=">=3.10,<3.12",  # recbole 1.2.1 requires ray<=2.6.3, which has wheels up to 3.11
    # The yaml files live at the top of the repository (properties/, dataset_configs/) and travel
    # inside the package when installed.
    packages=["recbole_diffrec", "recbole_diffrec.core", "recbole_diffrec.networks", "recbole_diffrec.models",
              "recbole_diffrec.training", "recbole_diffrec.data", "recbole_diffrec.properties",
              "recbole_diffrec.dataset_configs"],
    package_dir={"recbole_diffrec.properties": "properties",
                 "recbole_diffrec.dataset_configs": "dataset_configs"},
    package_data={"recbole_diffrec.properties": ["*.yaml", "*.hyper"], "recbole_diffrec.dataset_configs": ["*.yaml"]},
    install_requires=[
        "recbole==1.2.1",
        "torch>=2.6",
        "numpy>=2",
        "scipy>=1.13",
        "pandas>=2",
        "hyperopt>=0.2.7",
        "threadpoolctl>=3",
    ],
    extras_require={"test": ["pytest", "hypothesis", "matplotlib"], "bench": ["matplotlib", "psutil"]},
    entry_points={"console_scripts": ["recbole-diffrec=recbole_diffrec.cli:cli"]},
)
