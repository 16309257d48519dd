# Image for the Beam jobs and the TFX components on Kubeflow / Dataflow / Flink / Spark workers.
# Same stack as `make install`: uv with the overrides (ml-metadata 1.17.1, TFDV 1.16.1) and the
# tfx_bsl.arrow.sql_util shim. Build from the repository root:
#   docker build -f docker/pipeline.Dockerfile -t hemix-tf-pipeline .
# (No Docker engine runs on the development machine: this file is not built in CI.)
FROM python:3.11-slim
ENV TF_USE_LEGACY_KERAS=1 PYTHONUNBUFFERED=1
WORKDIR /hemix
COPY requirements/ requirements/
RUN pip install --no-cache-dir uv && \
    uv pip install --system --compile-bytecode -r requirements/stack.txt \
        --overrides requirements/overrides.txt
COPY tools/tfx_bsl_sql_util_shim.py /usr/local/lib/python3.11/site-packages/
RUN echo "import tfx_bsl_sql_util_shim" > /usr/local/lib/python3.11/site-packages/tfx_bsl_sql_util_shim.pth
COPY setup.py ./
COPY hemix_tf/ hemix_tf/
COPY pipelines/ pipelines/
RUN uv pip install --system --no-deps .
