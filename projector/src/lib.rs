//! The session domain of bookend; built in the lifecycle issue.
