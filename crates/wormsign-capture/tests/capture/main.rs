//! Integration tests of wormsign-capture, one module per area.

mod build;
mod compression;
mod damage;
mod formats;
mod real;
