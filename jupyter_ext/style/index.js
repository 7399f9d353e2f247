import './base.css';
import './dataquality.css';
import './scenarios.css';
import './connections.css';
import './notebook.css';
import './operations.css';
