//! Loading a shop from a directory of JSON files (`customers.json`, `products.json`,
//! `orders.json`), as shipped under `data/demo/`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::store::ShopData;

/// Largest file the loader reads: the demo shop is a few hundred KB; a bigger file is a mistake.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Why a shop directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ShopLoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{path} is {size} bytes, more than the {MAX_FILE_BYTES} a shop file may have")]
    TooLarge {
        /// File.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// References do not resolve (an order's customer or item does not exist, duplicate ids).
    #[error("{path}: {message}")]
    Integrity {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ShopLoadError> {
    let io = |source| ShopLoadError::Io { path: path.to_owned(), source };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(ShopLoadError::TooLarge { path: path.to_owned(), size });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    serde_json::from_slice(&bytes).map_err(|e| ShopLoadError::Parse {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

impl ShopData {
    /// Loads and validates a shop directory.
    pub fn load_dir(dir: &Path) -> Result<Self, ShopLoadError> {
        let data = Self {
            customers: read_json(&dir.join("customers.json"))?,
            products: read_json(&dir.join("products.json"))?,
            orders: read_json(&dir.join("orders.json"))?,
        };
        data.validate(dir)?;
        Ok(data)
    }

    /// Checks unique ids and that every reference resolves.
    pub fn validate(&self, dir: &Path) -> Result<(), ShopLoadError> {
        let fail = |file: &str, message: String| {
            Err(ShopLoadError::Integrity { path: dir.join(file), message })
        };
        let mut customers = HashSet::new();
        for c in &self.customers {
            if !customers.insert(c.id.as_str()) {
                return fail("customers.json", format!("duplicate customer id {:?}", c.id));
            }
        }
        let mut items = HashSet::new();
        let mut products = HashSet::new();
        for p in &self.products {
            if !products.insert(p.id.as_str()) {
                return fail("products.json", format!("duplicate product id {:?}", p.id));
            }
            for v in &p.variants {
                if !items.insert((p.id.as_str(), v.item_id.as_str())) {
                    return fail("products.json", format!("duplicate item id {:?}", v.item_id));
                }
            }
        }
        let mut orders = HashSet::new();
        for o in &self.orders {
            if !orders.insert(o.id.as_str()) {
                return fail("orders.json", format!("duplicate order id {:?}", o.id));
            }
            if crate::domain::normalize_order_id(&o.id).as_deref() != Some(o.id.as_str()) {
                return fail(
                    "orders.json",
                    format!("order id {:?} is not of the form #W1234567", o.id),
                );
            }
            if !customers.contains(o.customer_id.as_str()) {
                return fail(
                    "orders.json",
                    format!("order {} has unknown customer {:?}", o.id, o.customer_id),
                );
            }
            for i in &o.items {
                if !items.contains(&(i.product_id.as_str(), i.item_id.as_str())) {
                    return fail(
                        "orders.json",
                        format!("order {} has unknown item {:?}", o.id, i.item_id),
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_is_an_io_error_naming_the_file() {
        let err = ShopData::load_dir(Path::new("/nonexistent/shop")).unwrap_err();
        assert!(err.to_string().contains("customers.json"), "{err}");
    }

    #[test]
    fn broken_json_reports_file_line_and_column() {
        let dir = std::env::temp_dir().join(format!("fenliu-shop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("customers.json"), "[\n  {\"id\": 1,\n").unwrap();
        let err = ShopData::load_dir(&dir).unwrap_err();
        assert!(matches!(err, ShopLoadError::Parse { line: 2, .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dangling_references_are_rejected() {
        let mut data = crate::test_utils::fixture_shop();
        data.orders[0].customer_id = "ghost".into();
        let err = data.validate(Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("unknown customer"), "{err}");
    }
}
