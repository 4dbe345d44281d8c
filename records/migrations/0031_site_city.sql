-- A site's city, shown beside its name on the product page (issue 20). Optional: registering a
-- site again without one keeps the one it has.
ALTER TABLE sites ADD COLUMN city text CHECK (city IS NULL OR length(city) BETWEEN 1 AND 100);
