-- The app shows a photo only when the catalog records its path: look paths up by index.
CREATE INDEX images_path ON images(path);
