//! Element types of tensors: what a buffer holds and how many bytes an element takes. Every
//! kernel today reads and writes f32; f16 storage and u8 images are the next element types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DType {
    #[default]
    F32,
    F16,
    U8,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
            DType::U8 => 1,
        }
    }

    /// Bytes of a buffer holding `elems` elements: WebGPU binds storage in multiples of 4.
    pub fn bytes(self, elems: usize) -> u64 {
        (elems as u64 * self.size()).next_multiple_of(4)
    }

    /// The WGSL / safetensors spelling, for messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::U8 => "u8",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::DType;

    #[test]
    fn sizes_and_storage_bytes() {
        assert_eq!((DType::F32.size(), DType::F16.size(), DType::U8.size()), (4, 2, 1));
        assert_eq!(DType::F32.bytes(3), 12);
        assert_eq!(DType::F16.bytes(3), 8, "6 bytes padded to a multiple of 4");
        assert_eq!(DType::U8.bytes(5), 8);
        assert_eq!(DType::U8.bytes(8), 8);
    }
}
