DROP TABLE term_weights;
