"""Opens the processors a worker needs, from the verified model folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from processors import registry
from processors.attributes import AgeGenderNet, ExpressionNet, FaceApiAttributes
from processors.detector import YuNetDetector
from processors.extract_dlib import DlibResNetExtractor
from processors.extract_sface import SFaceExtractor
from processors.landmarks68 import FaceLandmarks68
from processors.liveness import MiniFASNetLiveness
from processors.pose import PoseEstimator
from processors.types import (
    AttributeEstimator,
    DescriptorExtractor,
    FaceDetector,
    LivenessEstimator,
)

_EXTRACTORS: dict[str, type[SFaceExtractor] | type[DlibResNetExtractor]] = {
    "sface": SFaceExtractor,
    "dlib_resnet": DlibResNetExtractor,
}
# The bytes of a descriptor of each version on the wire (float32 values).
DESCRIPTOR_BYTES = {
    version: 4 * _EXTRACTORS[name].dimension
    for version, name in registry.DESCRIPTOR_VERSIONS.items()
}


@dataclass
class ModelSet:
    """Models open lazily: a worker running only the match stage loads none."""

    models_dir: Path
    detection_threshold: float = 0.8
    _detector: FaceDetector | None = None
    _liveness: LivenessEstimator | None = None
    _pose: PoseEstimator | None = None
    _attributes: AttributeEstimator | None = None
    _extractors: dict[tuple[int, int | None], DescriptorExtractor] = field(default_factory=dict)

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = YuNetDetector(
                registry.model_path("yunet", self.models_dir),
                score_threshold=self.detection_threshold,
            )
        return self._detector

    @property
    def liveness(self) -> LivenessEstimator:
        if self._liveness is None:
            self._liveness = MiniFASNetLiveness(
                registry.model_path("minifasnet_v2", self.models_dir),
                registry.model_path("minifasnet_v1se", self.models_dir),
            )
        return self._liveness

    @property
    def pose(self) -> PoseEstimator:
        """Head pose from 68 landmarks (processors.pose), for checks that need the real angles."""
        if self._pose is None:
            path = registry.model_path(registry.LANDMARKS68.name, self.models_dir)
            self._pose = PoseEstimator(FaceLandmarks68(path))
        return self._pose

    @property
    def attributes(self) -> AttributeEstimator:
        """Age, gender and expression (processors.attributes)."""
        if self._attributes is None:
            self._attributes = FaceApiAttributes(
                AgeGenderNet(registry.model_path(registry.AGE_GENDER.name, self.models_dir)),
                ExpressionNet(registry.model_path(registry.EXPRESSION.name, self.models_dir)),
            )
        return self._attributes

    def set_detection_threshold(self, threshold: float) -> None:
        self.detection_threshold = threshold
        if isinstance(self._detector, YuNetDetector):
            self._detector.score_threshold = threshold

    def extractor(self, version: int, *, threads: int | None = None) -> DescriptorExtractor:
        """`threads` bounds the session's intra-op threads; a session with one is run by several
        callers side by side (the re-extraction task's lanes)."""
        if (version, threads) not in self._extractors:
            name = registry.DESCRIPTOR_VERSIONS.get(version)
            if name is None:
                raise ValueError(f"unknown descriptor version {version}")
            path = registry.model_path(name, self.models_dir)
            self._extractors[version, threads] = _EXTRACTORS[name](path, threads=threads)
        return self._extractors[version, threads]
