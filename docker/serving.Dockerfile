# TF Serving image for the pushed HeMix SavedModel. The server version is pinned to the TensorFlow that
# exports the model (TF 2.21): an older server may lack ops of a newer SavedModel.
#   docker build -f docker/serving.Dockerfile -t hemix-tf-serving .
#   docker run -p 8500:8500 -p 8501:8501 -v "$PWD/runs/demo/serving:/models/hemix" hemix-tf-serving
# The mounted directory is the Pusher's destination: numbered versions, the newest is served.
# (No Docker engine runs on the development machine: tests parse the two config files with the
# tensorflow-serving-api protos and replay the warm-up requests against the SavedModel instead.)
FROM tensorflow/serving:2.21.0
COPY docker/serving/models.config docker/serving/batching_parameters.txt /config/
EXPOSE 8500 8501
ENTRYPOINT ["tensorflow_model_server", "--port=8500", "--rest_api_port=8501", \
            "--model_config_file=/config/models.config", \
            "--enable_batching=true", "--batching_parameters_file=/config/batching_parameters.txt", \
            "--enable_model_warmup=true"]
