//! How ingest makes each [`Rendition`]: the encoder settings that are not the codec's own,
//! and the version of the packaging code.

use crate::config::IngestSettings;
use crate::media::Rendition;

/// Bumped whenever the packaging code changes its output, so re-runs re-package.
/// 2: the `aac` rendition. 3: the preview in AAC-LC instead of Opus.
pub const PIPELINE_VERSION: u32 = 3;

/// The bitrate `rendition` is coded at for a source of `channels`, bit/s; `None` for
/// lossless, whose bitrate is whatever FLAC makes of the source. Mono gets half the stereo
/// setting: an upmix would spend bits on a copy and tell players there is a stereo image
/// when there is none.
pub fn bitrate(rendition: Rendition, settings: &IngestSettings, channels: u16) -> Option<u32> {
    let stereo = match rendition {
        Rendition::Lossless => return None,
        Rendition::High => settings.high_bitrate,
        Rendition::Standard | Rendition::Preview => settings.standard_bitrate,
        Rendition::Aac => settings.aac_bitrate,
    };
    Some(if channels == 1 { stereo / 2 } else { stereo })
}
