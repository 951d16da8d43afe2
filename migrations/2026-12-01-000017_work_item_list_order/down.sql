CREATE INDEX work_items_service ON work_items (service);
CREATE INDEX work_items_status ON work_items (status);
DROP INDEX work_items_status_received;
DROP INDEX work_items_service_received;
DROP INDEX work_items_received;
