-- Which detector output each stored face is (faces under the size limit are skipped, so the
-- position in the arrays is not the face's index); descriptors.face_index refers to this.
ALTER TABLE {db}.events ADD COLUMN face_indexes Array(UInt16) AFTER face_count;
