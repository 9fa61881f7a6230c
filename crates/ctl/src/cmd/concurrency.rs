//! stub
use super::Ctx;
use crate::error::CtlError;
pub async fn lock(_c: &Ctx, _a: &[String], _t: i64, _e: &[String]) -> Result<(), CtlError> {
    Ok(())
}
pub async fn elect(_c: &Ctx, _a: &[String], _l: bool) -> Result<(), CtlError> {
    Ok(())
}
