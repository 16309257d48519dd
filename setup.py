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
    install_requires=["tfx==1.21.0", "tf-keras==2.21.0", "pyarrow", "pyyaml", "tqdm", "absl-py"],
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
