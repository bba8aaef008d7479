// Entry of backplane/otel: being built in this session (replaced by its real exports before landing).
export {};
