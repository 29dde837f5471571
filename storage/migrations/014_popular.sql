-- Popular first (issue 16): the services and countries most bought over the last 30 days are
-- counted from the orders on each (cached) read. These two indexes cover those counts, so a
-- count reads index entries of the window only, never the orders table:
--   every order since a time, by service        -> orders_bought_since (created_at, service_id)
--   one service's orders since a time, by country -> orders_service_bought (service_id,
--                                                     created_at, country)
CREATE INDEX orders_bought_since ON orders (created_at, service_id);
CREATE INDEX orders_service_bought ON orders (service_id, created_at, country);
