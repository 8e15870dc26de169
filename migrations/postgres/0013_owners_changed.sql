-- What the policies read of an order (its customer) and of a resource (its
-- customer and charging) is announced like the rest (0010), so that a change
-- made in the database reaches every gateway at once rather than after the
-- entity cache's TTL. Only those columns: status changes are frequent and
-- no policy reads them.
CREATE TRIGGER orders_changed AFTER UPDATE OF customer_id OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION pgw_notify_entity_change();
CREATE TRIGGER resources_changed AFTER UPDATE OF customer_id, charging OR DELETE ON resources
    FOR EACH ROW EXECUTE FUNCTION pgw_notify_entity_change();
