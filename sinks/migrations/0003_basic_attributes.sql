-- Basic attributes (age, gender, expressions) of event faces and known faces; events without
-- them (none asked for) hold NaN ages, empty genders and an empty expressions object per face.
-- +up
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS face_ages Array(Float32) AFTER liveness_quality;
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS face_genders Array(String) AFTER face_ages;
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS face_gender_probabilities Array(Float32) AFTER face_genders;
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS face_expressions_json String AFTER face_gender_probabilities;
ALTER TABLE {db}.faces ADD COLUMN IF NOT EXISTS attributes_json String AFTER sample_id;

-- +down
ALTER TABLE {db}.faces DROP COLUMN IF EXISTS attributes_json;
ALTER TABLE {db}.events DROP COLUMN IF EXISTS face_expressions_json;
ALTER TABLE {db}.events DROP COLUMN IF EXISTS face_gender_probabilities;
ALTER TABLE {db}.events DROP COLUMN IF EXISTS face_genders;
ALTER TABLE {db}.events DROP COLUMN IF EXISTS face_ages;
