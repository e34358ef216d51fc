// placeholder so empty modules still form a library
