//! Zigzag LEB128, the compact form of the small signed differences that checkpoints, journals
//! and the latency bookkeeping store: a byte for differences within ±63, two within ±8191,
//! ten at most. A leaf: it imports nothing of the crate.

/// Append `d` zigzag LEB128.
pub fn put_varint(buf: &mut Vec<u8>, d: i64) {
    let mut z = ((d << 1) ^ (d >> 63)) as u64;
    while z >= 0x80 {
        buf.push((z as u8) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

/// Read what [`put_varint`] wrote at `at`, moving `at` past it.
pub fn take_varint(bytes: &[u8], at: &mut usize) -> Result<i64, String> {
    let mut z = 0u64;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*at).ok_or("the bytes end inside a number")?;
        *at += 1;
        if shift > 63 {
            return Err("a number is longer than ten bytes".into());
        }
        z |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b < 0x80 {
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_difference_reads_back_at_its_length() {
        let ds = [0, 1, -1, 63, -64, 64, 8191, -8192, 8192, i64::MAX, i64::MIN];
        let mut buf = Vec::new();
        let mut lens = Vec::new();
        for d in ds {
            let before = buf.len();
            put_varint(&mut buf, d);
            lens.push(buf.len() - before);
        }
        assert_eq!(lens, [1, 1, 1, 1, 1, 2, 2, 2, 3, 10, 10]);
        let mut at = 0;
        for d in ds {
            assert_eq!(take_varint(&buf, &mut at), Ok(d));
        }
        assert_eq!(at, buf.len());
        assert!(take_varint(&buf, &mut at).is_err(), "nothing left to read");
        assert!(take_varint(&[0x80; 11], &mut 0).is_err(), "too long");
    }
}
