DROP TABLE model_params;
