DROP TABLE webhook_deliveries;
DROP TABLE work_items;
DROP TABLE humans;
