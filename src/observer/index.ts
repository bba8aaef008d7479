// Entry of backplane/observer: being built in this session (replaced by its real exports before landing).
export {};
