//! Helpers shared by kefu's black-box tests, the crash test and the load generator.
