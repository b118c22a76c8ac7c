//! `/swarm`: Berth is never part of a swarm; the answers say so in Docker's words and
//! status (503), which clients such as docker-py take as "not in a swarm".

use http::StatusCode;

use crate::http::{error, Resp};

/// `GET /swarm`.
pub fn inspect() -> Resp {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
    )
}

/// `POST /swarm/leave`.
pub fn leave() -> Resp {
    error(StatusCode::SERVICE_UNAVAILABLE, "This node is not part of a swarm")
}
