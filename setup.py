"""hemix-tf: a TensorFlow/Keras + TFX production training pipeline for the HeMix CTR ranking model.

The pinned TFX stack is installed by `make install` (uv + requirements/overrides.txt); the loose
requirements below only name what the package imports directly.
"""
from setuptools import find_packages, setup

setup(
    name="hemix-tf",
    version="0.1.0",
    description="HeMix ranking model (Keras) with a TFX / Apache Beam production pipeline",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["hemix_tf", "hemix_tf.*", "pipelines", "pipelines.*"]),
    package_data={"hemix_tf": ["configs/*.yaml"]},
    # Every distribution the package imports (tests: test_packaging_lists_every_import).
    install_requires=["tfx==1.21.0", "tensorflow", "tf-keras==2.21.0", "apache-beam", "tensorflow-transform",
                      "tensorflow-model-analysis", "tfx-bsl", "tensorflow-metadata", "ml-metadata",
                      "tensorflow-recommenders", "tensorflow-serving-api", "numpy", "scipy", "scikit-learn",
                      "matplotlib", "pandas", "pyarrow", "pyyaml", "tqdm", "absl-py", "protobuf", "zstandard"],
    entry_points={
        "console_scripts": [
            "hemix-data=hemix_tf.data.cli:run_cli",
            "hemix-sequence-job=pipelines.sequence_job_cli:run_cli",
            "hemix-pipeline=pipelines.pipeline_cli:run_cli",
            "hemix-batch-score=pipelines.batch_scoring_cli:run_cli",
            "hemix-experiment=hemix_tf.experiments.cli:run_cli",
        ]
    },
)
