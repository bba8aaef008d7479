// Entry of backplane/cluster: being built in this session (replaced by its real exports before landing).
export {};
