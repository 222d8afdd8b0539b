//! Parity of one stripe: Reed-Solomon over GF(2^8) (reed-solomon-erasure with `simd-accel`,
//! which measured fastest here for encode and rebuild together), or plain copies for
//! replication. Works on whole cells of equal length; knows nothing of blocks or servers.

use crate::error::Error;
use crate::layout::Layout;
use reed_solomon_erasure::galois_8::ReedSolomon;
use std::sync::Arc;

/// Encoder/decoder for one layout. Cheap to clone.
#[derive(Clone)]
pub struct Codec {
    layout: Layout,
    rs: Option<Arc<ReedSolomon>>,
}

impl Codec {
    pub fn new(layout: Layout) -> Result<Codec, Error> {
        let rs = if layout.replication || layout.m == 0 {
            None
        } else {
            Some(Arc::new(ReedSolomon::new(layout.k, layout.m).map_err(
                |e| Error::InvalidArgument(format!("RS({}, {}): {e:?}", layout.k, layout.m)),
            )?))
        };
        Ok(Codec { layout, rs })
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Fills the m parity cells `cells[k..]` from the data cells `cells[..k]`; all cells have
    /// the same length.
    pub fn encode(&self, cells: &mut [Vec<u8>]) -> Result<(), Error> {
        self.check_shape(cells)?;
        let k = self.layout.k;
        if self.layout.replication {
            let (data, copies) = cells.split_at_mut(k);
            for c in copies {
                c.copy_from_slice(&data[0]);
            }
            return Ok(());
        }
        match &self.rs {
            Some(rs) => rs
                .encode(cells)
                .map_err(|e| Error::Internal(format!("encode: {e:?}"))),
            None => Ok(()),
        }
    }

    /// Regenerates the cells whose `present` flag is false from the others (at least k must
    /// be present). On error nothing is changed.
    pub fn reconstruct(&self, cells: &mut [Vec<u8>], present: &[bool]) -> Result<(), Error> {
        self.check_shape(cells)?;
        if present.len() != cells.len() {
            return Err(Error::Internal("present flags do not match cells".into()));
        }
        let good = present.iter().filter(|p| **p).count();
        if good < self.layout.k {
            return Err(Error::Internal(format!(
                "{good} cells present, {} needed",
                self.layout.k
            )));
        }
        if good == cells.len() {
            return Ok(());
        }
        if self.layout.replication {
            let src = present
                .iter()
                .position(|p| *p)
                .ok_or_else(|| Error::Internal("no copy present".into()))?;
            let copy = cells[src].clone();
            for (c, p) in cells.iter_mut().zip(present) {
                if !p {
                    c.copy_from_slice(&copy);
                }
            }
            return Ok(());
        }
        let rs = self
            .rs
            .as_ref()
            .ok_or_else(|| Error::Internal("no parity to rebuild from".into()))?;
        let mut slots: Vec<(&mut [u8], bool)> = cells
            .iter_mut()
            .zip(present)
            .map(|(c, p)| (c.as_mut_slice(), *p))
            .collect();
        rs.reconstruct(&mut slots)
            .map_err(|e| Error::Internal(format!("reconstruct: {e:?}")))
    }

    fn check_shape(&self, cells: &[Vec<u8>]) -> Result<(), Error> {
        if cells.len() != self.layout.shards() {
            return Err(Error::Internal(format!(
                "{} cells for {} shards",
                cells.len(),
                self.layout.shards()
            )));
        }
        let len = cells[0].len();
        if cells.iter().any(|c| c.len() != len) {
            return Err(Error::Internal("cells of unequal length".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe(layout: Layout, cell: usize, seed: u8) -> Vec<Vec<u8>> {
        let mut cells = vec![vec![0u8; cell]; layout.shards()];
        for (i, c) in cells.iter_mut().take(layout.k).enumerate() {
            for (j, b) in c.iter_mut().enumerate() {
                *b = (j as u8).wrapping_mul(31).wrapping_add(i as u8 * 7 + seed);
            }
        }
        cells
    }

    #[test]
    fn any_m_lost_cells_come_back() {
        let l = Layout::new(6, 3, 4096, false).unwrap();
        let codec = Codec::new(l).unwrap();
        let mut cells = stripe(l, 4096, 3);
        codec.encode(&mut cells).unwrap();
        assert!(cells[6].iter().any(|b| *b != 0), "parity was not written");
        let orig = cells.clone();
        for lost in [[0, 1, 2], [3, 6, 8], [6, 7, 8], [0, 4, 7]] {
            let mut damaged = orig.clone();
            let mut present = vec![true; 9];
            for i in lost {
                damaged[i].fill(0xAA);
                present[i] = false;
            }
            codec.reconstruct(&mut damaged, &present).unwrap();
            assert_eq!(damaged, orig, "lost {lost:?}");
        }
        let mut present = vec![true; 9];
        present[..4].fill(false);
        assert!(codec.reconstruct(&mut cells.clone(), &present).is_err());
    }

    #[test]
    fn replication_copies() {
        let l = Layout::new(1, 2, 128, true).unwrap();
        let codec = Codec::new(l).unwrap();
        let mut cells = stripe(l, 128, 9);
        codec.encode(&mut cells).unwrap();
        assert_eq!(cells[1], cells[0]);
        assert_eq!(cells[2], cells[0]);
        let orig = cells.clone();
        cells[0].fill(0);
        cells[2].fill(0);
        codec
            .reconstruct(&mut cells, &[false, true, false])
            .unwrap();
        assert_eq!(cells, orig);
    }
}
