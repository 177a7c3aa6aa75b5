namespace strowger::cli {}
