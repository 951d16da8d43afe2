-- The admin list pages through work items newest first (received_at DESC, id), optionally
-- for one service or status. Without an index in that order every page sorted the whole
-- table. The service and status indexes served only those filters, so they become the
-- leading columns of ordered ones: the intake maintains one index more than before.
CREATE INDEX work_items_received ON work_items (received_at DESC, id);
CREATE INDEX work_items_service_received ON work_items (service, received_at DESC, id);
CREATE INDEX work_items_status_received ON work_items (status, received_at DESC, id);
DROP INDEX work_items_service;
DROP INDEX work_items_status;
