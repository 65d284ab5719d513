-- Which detector output each stored face is (faces under the size limit are skipped, so the
-- position in the arrays is not the face's index); descriptors.face_index refers to this.
-- +up
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS face_indexes Array(UInt16) AFTER face_count;

-- +down
ALTER TABLE {db}.events DROP COLUMN IF EXISTS face_indexes;
